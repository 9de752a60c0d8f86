"""Robotics policy architectures, one family a file."""
