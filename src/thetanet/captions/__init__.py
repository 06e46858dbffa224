"""From images to text: the CNN → attentive LSTM captioner of digit scenes (the lecture's
Figure 3), its decoding (greedy, beam search) and its metrics (exact match, BLEU-4)."""
