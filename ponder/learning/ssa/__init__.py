"""SSA aggregator training: ``data`` (candidate sets from a collection), ``rft`` and ``rft_run``
(rejection-sampling fine-tuning targets), ``sft`` and ``train`` (LoRA SFT, train venv), ``grpo*``
(GRPO on answer correctness), ``export`` and ``gguf_convert`` (adapter -> GGUF), ``curve``
(plots).
"""
