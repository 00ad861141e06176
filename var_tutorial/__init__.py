"""var_tutorial: Visual Autoregressive modeling (VAR), taught step by step.

Read the modules in this order; each imports only modules above it (tests/test_imports.py):
    config, data, records, powerlaw          configs, images, results/*.json, power-law fits
    codebook -> quantizer -> vqvae           the tokenizer
    transformer                              VAR and the raster baseline
    sampling, editing, classifier            generation, zero-shot editing, the judge of samples
    fast                                     the speed layer, applied to the above from outside
    metrics, pretrained                      measuring; shipped weights
    train/, distributed                      training loops, several GPUs
    scaling, bench, exercises                the sweep, the benchmarks, the student notebooks
    report                                   the docs' tables
    viz, widgets                             pictures and notebook controls
    cli/ (python -m var_tutorial)            the command line
"""
__version__ = "0.1.0"
