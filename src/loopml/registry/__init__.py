"""The model registry: model packages with flavors and signatures, versions and aliases."""
