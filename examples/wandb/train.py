"""An unchanged W&B sweep script (scikit-learn MLP on digits): run it with `sweepq agent`.

Nothing here knows about sweepq: wandb.config holds the sweep's values, every wandb.log value
reaches sweepq's pruner and sampler, and with no W&B account wandb runs disabled (no prompt).
"""

import argparse
import warnings

import wandb
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier

parser = argparse.ArgumentParser()
parser.add_argument("--learning_rate", type=float, default=0.001)
parser.add_argument("--hidden", type=int, default=32)
parser.add_argument("--epochs", type=int, default=20)
args = parser.parse_args()

run = wandb.init(project="digits", config=args)
wandb.define_metric("val/acc", summary="max")
X, y = load_digits(return_X_y=True)
X_train, X_val, y_train, y_val = train_test_split(X / 16.0, y, test_size=0.3, random_state=0)
model = MLPClassifier(hidden_layer_sizes=(wandb.config.hidden,), learning_rate_init=wandb.config.learning_rate)
warnings.filterwarnings("ignore", category=ConvergenceWarning)
for epoch in range(wandb.config.epochs):
    model.partial_fit(X_train, y_train, classes=list(range(10)))
    wandb.log({"epoch": epoch, "train/loss": model.loss_, "val/acc": model.score(X_val, y_val)})
run.summary["final_acc"] = model.score(X_val, y_val)
wandb.finish()
