"""Sizes of the registered Marian translator, declared without importing torch or transformers."""

# A small default: 3+3 layers of width 256 (about 9M parameters with a 8k vocabulary).
SMALL_CONFIG = {
    "d_model": 256, "encoder_layers": 3, "decoder_layers": 3, "encoder_attention_heads": 4,
    "decoder_attention_heads": 4, "encoder_ffn_dim": 1024, "decoder_ffn_dim": 1024,
    "max_position_embeddings": 256, "dropout": 0.1, "activation_function": "swish", "scale_embedding": True,
    "share_encoder_decoder_embeddings": True, "tie_word_embeddings": True,
}
