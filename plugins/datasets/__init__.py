"""Built-in dataset kinds (digits, npz, factory, text, image-folder), registered through the entry point."""
