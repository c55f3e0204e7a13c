"""Losses of the trainers: perceptual (VGG-19), identity (ArcFace), adversarial and Gram style."""
