"""Network architectures whose state_dict keys and shapes equal the official checkpoints'."""
