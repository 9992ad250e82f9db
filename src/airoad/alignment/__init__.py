"""Post-training and alignment: policy gradients, reward models and preference optimisation."""
