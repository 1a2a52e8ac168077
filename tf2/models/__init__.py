"""Networks: ResNet / SK-ResNet, BatchNorm, projection and supervised heads, the SimCLR model."""
