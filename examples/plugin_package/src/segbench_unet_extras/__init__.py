"""Example third-party segbench plugins (entry points of the group ``segbench.plugins``):

* ``dice_bce`` (:func:`segbench_unet_extras.losses.dice_bce`): a U-Net loss, binary cross entropy on
  P(cell) plus 1 - soft Dice, without the paper's weight map;
* ``res_unet`` (:func:`segbench_unet_extras.models.res_unet`): a U-Net-family model whose blocks are
  residual, with the unpadded U-Net's tile geometry.
"""

__version__ = "0.1.0"
