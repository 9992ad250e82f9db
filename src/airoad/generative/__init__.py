"""Generative models (autoencoders, VAEs, GANs, diffusion) and the shared yardstick that scores them."""
