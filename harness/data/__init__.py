"""Data sets: synthetic tasks that need no download, and (later) CIFAR-10 / MNIST."""
