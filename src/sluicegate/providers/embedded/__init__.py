"""The embedded embeddings model: all-MiniLM-L6-v2 on ONNX Runtime, offline."""
