"""The ``pruning`` strategy: structured channel pruning (Torch-Pruning) and unstructured/N:M magnitude
pruning (torch.nn.utils.prune), with fine-tuning and honest size accounting."""
