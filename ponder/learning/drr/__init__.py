"""Training and held-out evaluation of the DRR judge (DM): ``states`` (records -> checkpoint
states), ``train`` (grouped CV, model choice, Platt; scikit-learn), ``replay`` (every stop policy
over a collection), ``evaluate`` (report + plots). Inference lives in ``ponder.stopping``."""
