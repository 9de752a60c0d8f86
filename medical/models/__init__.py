"""Medical architectures, one family a file: ``unet3d`` (volumetric segmentation), ``classifier2d`` (timm backbones, 1-channel)."""
