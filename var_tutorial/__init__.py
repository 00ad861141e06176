"""var_tutorial: Visual Autoregressive modeling (VAR), taught step by step.

Read the modules in this order (imports flow one way):
    config -> data -> results -> codebook -> quantizer -> vqvae -> transformer -> sampling -> classifier
    -> metrics -> pretrained -> train -> viz -> widgets -> __main__
"""
__version__ = "0.1.0"
