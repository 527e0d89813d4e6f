"""`vae-digits`, `vae-fashion`: variational autoencoders on binarised images, judged by held-out nats per image.

The default model is a small convolutional VAE; `model.name=vae-mlp` gives the curriculum's MLP VAE (784-400-400,
latent 20, BCE + KL) under the same data, optimiser and schedule, so the two compare fairly (`dlzoo bench generative`).
"""

from dlzoo.config import ModelConfig, OptimConfig, TrainerConfig
from dlzoo.recipes import Recipe, register_recipe
from dlzoo.tasks.generative import GenerativeDataConfig
from dlzoo.tasks.vae import VAEConfig, VAETask


def vae_config(source: str, epochs: int, eval_every: int) -> VAEConfig:
    return VAEConfig(
        # An evaluation decodes k=100 latent samples per held-out image: not every epoch (the last always is).
        trainer=TrainerConfig(epochs=epochs, eval_every=eval_every),
        optim=OptimConfig(name="adam", lr=1e-3, weight_decay=0.0, schedule="cosine", warmup=0.05),
        data=GenerativeDataConfig(source=source, batch_size=64),
        # Only arguments both VAEs take, so model.name=vae-mlp works without touching model.args.
        model=ModelConfig(name="vae-conv", args={"latent_dim": 20}),
    )


register_recipe(Recipe(
    name="vae-digits",
    task=VAETask,
    default_config=lambda: vae_config("mnist5k", epochs=40, eval_every=10),
    summary="VAE on binarised mnist5k digits (conv; model.name=vae-mlp for the curriculum's); held-out nats/image",
    reference="held-out NLL 99.9 nats (IW, k=100; -ELBO 105.0) vs curriculum MLP VAE 115.6 (119.6), 93 s train "
              "(quiet) to 122 s (busy), 1 thread on a 2-core AMD EPYC CPU: dlzoo bench generative threads=1",
))

register_recipe(Recipe(
    name="vae-fashion",
    task=VAETask,
    default_config=lambda: vae_config("fashion-mnist", epochs=20, eval_every=10),
    summary="VAE on binarised Fashion-MNIST (conv; model.name=vae-mlp for the curriculum's); held-out nats/image",
    reference="held-out NLL 233.0 nats (IW, k=100; -ELBO 235.8) vs curriculum MLP VAE 235.5 (237.0), 737 s train "
              "on a busy machine (610 s in an earlier, quieter run), 1 thread on a 2-core AMD EPYC CPU: dlzoo bench "
              "generative threads=1 fashion=true",
))
