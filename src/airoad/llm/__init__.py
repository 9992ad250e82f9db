"""Large language models: fine-tuning, quantisation and prompting of small pretrained models."""
