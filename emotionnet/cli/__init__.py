"""The command line: `emotionnet predict | evaluate | train | export | listen | app`."""
