"""The mini CLIPs of the CPU benchmarks: OpenAI's architecture at toy size, pretrained on a CPU on
FashionMNIST's official TRAIN split (docs/mini_clip.md says how and why).

* ``recipe``: every setting that shapes a checkpoint, per benchmark, and the check that a saved
  checkpoint was made with the wanted one;
* ``captions``: the noisy captions, drawn from the vocabulary each benchmark keeps with its data
  (``benchmarks.fashion_mnist``, ``benchmarks.fashion_colours``);
* ``preprocess``: the images as the model sees them (resized, center-cropped, CLIP-normalised);
* ``training``: the model and the pretraining loop;
* ``evaluation``: zero-shot and 16-shot class-mean accuracy on the downstream split.

``python -m benchmarks.pretrain_mini_clip`` (benchmarks/pretrain_mini_clip.py) is the command line over them.
"""
