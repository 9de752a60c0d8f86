"""NLP architectures: sentence encoders (with an optional head) and transformers pass-through classifiers."""
