"""Helpers shared by concept comparisons (not concepts themselves, so they live outside the
family folders): micrograd's graphs, training and drawing; the training-loop set-up that
training_loop and generalization share; the built-in CNN feature extractor of cnn and cnn_rnn."""
