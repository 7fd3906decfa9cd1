"""Looking into trained models: occlusion explanations, robustness to templates and
perturbations, and the prompts a model sees."""
