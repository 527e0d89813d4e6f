"""`translation`: the curriculum's Transformer encoder-decoder, translating Chinese words and idioms into English.

d2l trains its seq2seq Transformer on English-French sentence pairs from a download (`data.source=fra-eng`, with
`data.source_tokens=word`); offline, the real parallel text at hand is CC-CEDICT, a Chinese-English dictionary: each
headword (a word, a name, an idiom) with its first English gloss, read a character at a time into English words.
"""

from dlzoo.config import OptimConfig, TrainerConfig
from dlzoo.recipes import Recipe, register_recipe
from dlzoo.tasks.translation import Translation, TranslationConfig, TranslationDataConfig
from dlzoo.text.seq2seq import Seq2SeqModelConfig


def translation_config() -> TranslationConfig:
    return TranslationConfig(
        trainer=TrainerConfig(epochs=6, grad_clip=1.0),
        optim=OptimConfig(name="adamw", lr=1e-3, weight_decay=0.01, schedule="onecycle", warmup=0.1),
        # 8,000 tokens a side: an output layer over all 20,156 English words seen twice is paid for at every token;
        # subword pieces write the rarer words that 8,000 whole words would leave as <unk> (docs/translation.md).
        data=TranslationDataConfig(source="cedict", source_tokens="char", target_tokens="subword",
                                   max_vocabulary=8000, batch_size=128),
        model=Seq2SeqModelConfig(width=256, layers=2, heads=4, feed_forward=1024, dropout=0.1),
    )


register_recipe(Recipe(
    name="translation",
    task=Translation,
    default_config=translation_config,
    summary="Transformer encoder-decoder: Chinese words and idioms to English (CC-CEDICT), greedy decoding, BLEU",
    reference="test BLEU-4 0.099 (beam 4: 0.111), exact match 5.4% (6.3%) on 5,125 held-out headwords, 2,186 s "
              "train (dlzoo train translation, 6 epochs; dlzoo eval RUN beam=4; 2-core Intel Xeon CPU, 2 threads)",
))
