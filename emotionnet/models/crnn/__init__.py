"""The `crnn` family: convolutions, a BiLSTM and attention pooling (network.py), declared in family.py."""
