"""Training pieces the per-worker loop calls: augmentation, batch contract, targets, losses,
the objective that ties them to a network, and the open pose prior. Pure torch / numpy."""
