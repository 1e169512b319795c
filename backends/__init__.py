"""Built-in hardware backends. Each sub-package registers through the `edgecraft` entry-point group,
exactly as a third-party package would; the core never imports these by name."""
