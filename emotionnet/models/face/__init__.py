"""The face family: a face detector, FER2013-style crops and a small CNN over six emotions."""
