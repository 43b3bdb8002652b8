"""The `cnn` family: convolution blocks over the log-mel image (network.py), declared in family.py."""
