//! 20 Newsgroups: text reading as the reference, a Keras-equivalent tokenizer, padding, and GloVe vectors.
