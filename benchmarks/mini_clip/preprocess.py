"""Images as the mini CLIP sees them: uint8 pixels resized, center-cropped and CLIP-normalised the way
Dassl's test transform treats the exported PNGs (``INPUT.INTERPOLATION: bicubic``)."""

import numpy as np

from clipprompt.clip.backbone import OPENAI_PIXEL_MEAN, OPENAI_PIXEL_STD


def preprocess_images(images, size, mean=OPENAI_PIXEL_MEAN, std=OPENAI_PIXEL_STD):
    """Turn uint8 images, grayscale [N, H, W] or RGB [N, H, W, 3], into normalised float tensors [N, 3, size, size].

    Matches Dassl's test transform with ``INPUT.INTERPOLATION: bicubic`` on the
    exported PNGs: PIL reads the PNG and converts it to RGB (three equal
    channels for grayscale), resizes the shorter side to ``size`` with PIL's
    bicubic filter, center-crops ``size x size``, scales to [0, 1] and
    normalises with ``mean``/``std``. Resizing a grayscale image once and
    copying it to three channels gives the same pixels, at a third of the cost.
    """
    import torch

    images = np.asarray(images, dtype=np.uint8)
    if images.ndim == 4 and images.shape[-1] == 3:
        pixels = torch.from_numpy(resize_images(images, size)).float().div_(255.0).permute(0, 3, 1, 2)
    elif images.ndim == 3:
        pixels = torch.from_numpy(resize_images(images, size)).float().div_(255.0).unsqueeze(1).expand(-1, 3, -1, -1)
    else:
        raise ValueError(f"expected images [N, H, W] or [N, H, W, 3], got shape {images.shape}")
    return normalize_pixels(pixels, mean, std)


def normalize_pixels(pixels, mean=OPENAI_PIXEL_MEAN, std=OPENAI_PIXEL_STD):
    """[N, 3, H, W] floats in [0, 1] -> CLIP-normalised."""
    import torch

    mean_t = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
    std_t = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)
    return ((pixels - mean_t) / std_t).contiguous()


def resize_images(images, size):
    """uint8 [N, H, W(, 3)] -> uint8 [N, size, size(, 3)]: shorter side to ``size`` (PIL bicubic), center crop."""
    from PIL import Image

    height, width = images.shape[1:3]
    # Shorter side to `size`, the other scaled as torchvision's Resize(int) does.
    if height <= width:
        new_height, new_width = size, int(size * width / height)
    else:
        new_height, new_width = int(size * height / width), size
    top = int(round((new_height - size) / 2.0))
    left = int(round((new_width - size) / 2.0))
    resized = np.empty((len(images), size, size) + images.shape[3:], dtype=np.uint8)
    for i, image in enumerate(images):
        # PIL directly: torchvision's functional wrappers cost 10x more per tiny image.
        picture = Image.fromarray(image).resize((new_width, new_height), Image.BICUBIC)
        resized[i] = np.asarray(picture)[top : top + size, left : left + size]
    return resized
