"""Text: tokens and vocabularies (`tokens`), labelled text collections (`corpus`), networks that read token ids
(`models`) and word vectors trained with gensim (`word2vec`)."""
