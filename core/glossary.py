"""The words Trainboard uses, each in two or three plain sentences, and links to them.

The Glossary page (``app_pages/glossary.py``) shows every term under a heading whose anchor is
the term's key, so a reading can point at one: ``link("recall")`` is the markdown link
``[recall](glossary#recall)``. Streamlit opens a link that is not ``#…`` in a new browser tab;
the page scrolls to the heading whose anchor matches the address's ``#…``. The Evaluate page's
session stays where it was in the first tab.
"""

from __future__ import annotations

from dataclasses import dataclass

#: The Glossary page's address, relative to the app's own (``st.Page`` derives it from the file name).
PAGE_URL = "glossary"


@dataclass(frozen=True)
class Term:
    key: str  # the page anchor: lower case, words joined by "-"
    name: str  # the heading
    text: str  # two or three plain sentences
    see: tuple[str, ...] = ()  # related terms' keys


_TERMS = (
    Term("accuracy", "Accuracy",
         "The share of rows the model predicts right. Easy to read, but misleading when one class dominates: "
         "always answering “no” scores 90% when nine rows in ten are “no”.",
         ("balanced-accuracy", "imbalanced-classes")),
    Term("average-precision", "Average precision (AP)",
         "The area under the precision-recall curve: the precision averaged over every recall the model can "
         "reach. Guessing scores the share of real cases, so compare it with that share, not with 0.5.",
         ("precision", "recall", "precision-recall-curve")),
    Term("balanced-accuracy", "Balanced accuracy",
         "The recall of each class, averaged, so a rare class counts as much as a common one. Guessing scores "
         "1 divided by the number of classes.",
         ("accuracy", "recall")),
    Term("baseline", "Baseline",
         "A simple model trained beside the real one, to show what the data gives without effort: here the "
         "linear model. A model worth keeping beats it clearly; when it does not, the simpler model is the "
         "better choice.",
         ("no-skill-guess",)),
    Term("blend", "Blend",
         "The average of the predictions of a few different models. The automatic contest delivers a blend only "
         "when it beats its best single model by more than the noise between folds.",
         ("contest",)),
    Term("class-weights", "Class weights",
         "While learning, mistakes on a rare class are made to count more, so the model cannot ignore it to "
         "score well on the common one. Trainboard weighs imbalanced classes to count equally (some models lean on a "
         "decision threshold instead).",
         ("imbalanced-classes", "threshold")),
    Term("confusion-matrix", "Confusion matrix",
         "A table of the validation rows: one row per true class, one column per predicted class. The diagonal "
         "holds the right answers; every other cell counts one kind of mistake.",
         ("precision", "recall")),
    Term("contest", "Automatic contest",
         "In automatic mode several kinds of model are scored on the training rows (by cross-validation), and "
         "the simplest one within one standard error of the best wins. The validation rows take no part, so "
         "their scores stay honest.",
         ("cross-validation", "one-standard-error", "blend")),
    Term("cross-validation", "Cross-validation (folds)",
         "The rows are cut into a few parts, the folds; each model is trained on all but one fold and scored on "
         "the one it did not see, once per fold. The spread of the fold scores shows how much a score is luck. "
         "A prediction made this way for every row is called out of fold.",
         ("contest", "validation-rows")),
    Term("early-stopping", "Early stopping",
         "Training stops once the validation loss has not improved for a while, instead of running to the "
         "planned maximum. Neural networks then go back to their best epoch's weights; boosting and forests keep "
         "what they grew.",
         ("loss", "overfitting", "epoch")),
    Term("epoch", "Epoch, boosting round, trees",
         "The steps on a training curve's x axis. A neural network's epoch is one pass over all training rows; "
         "gradient boosting adds one small tree per round; a random forest grows more trees.",
         ("loss", "early-stopping")),
    Term("f1", "F1 and macro F1",
         "F1 balances precision and recall in one number (their harmonic mean): it is high only when both are. "
         "Macro F1 is the average of each class's F1, so every class counts the same however rare it is.",
         ("precision", "recall")),
    Term("imbalanced-classes", "Imbalanced classes",
         "One class is much rarer than the others, like fraud among payments. Accuracy then flatters a model "
         "that ignores the rare class: read balanced accuracy, macro F1 and the precision-recall curve instead.",
         ("class-weights", "balanced-accuracy", "average-precision")),
    Term("log-loss", "Log loss",
         "How surprised the model is by the true answers, from the probabilities it gave them: confident wrong "
         "answers cost the most. 0 is perfect; lower is better. It is the loss most classifiers learn by.",
         ("loss",)),
    Term("loss", "Loss",
         "The number a model makes smaller while it learns: how far its predictions are from the truth (log "
         "loss for classes, squared error for numbers). Lower is better; only its trend and the gap between "
         "training and validation matter, not its units.",
         ("log-loss", "overfitting")),
    Term("mae", "Mean absolute error (MAE)",
         "The average size of an error, in the target's own units: 46 means predictions are 46 off on average. "
         "Lower is better.",
         ("rmse", "residual")),
    Term("no-skill-guess", "No-skill guess",
         "The answer that needs no model: always the most common class (with the training rows' class shares "
         "as probabilities), or always the mean for a number. Any model must beat it to be useful at all.",
         ("baseline",)),
    Term("one-standard-error", "One standard error rule",
         "When several models score within the noise of the best one (one standard error of its fold scores), "
         "the simplest of them is picked. It is as good as far as the data can tell, and easier to trust.",
         ("contest", "cross-validation")),
    Term("overfitting", "Overfitting",
         "The model memorises the training rows, noise included, instead of learning what carries over to new "
         "rows. It shows as a validation loss that turns up while the training loss keeps falling, and as "
         "validation scores well below the training ones.",
         ("loss", "early-stopping", "validation-rows")),
    Term("permutation-importance", "Permutation importance",
         "How much worse the model scores when one column's values are shuffled among the rows, which breaks "
         "that column's link to the target while keeping its values. A large drop means the model relies on the "
         "column; about zero means it does not.",
         ()),
    Term("pretrained-network", "Pretrained network (features, fine-tuning)",
         "A network already trained on a million photos (ImageNet) turns each picture into a list of numbers, "
         "its features, from which a small model learns your classes: a few dozen photos can be enough. "
         "Fine-tuning also lets the network's last blocks adjust to your pictures. It helps with photos; small "
         "drawn glyphs suit a network trained from scratch.",
         ("epoch", "saliency")),
    Term("precision", "Precision",
         "Of the rows the model flags as a class, the share that really are that class. High precision means "
         "few false alarms.",
         ("recall", "threshold", "f1")),
    Term("precision-recall-curve", "Precision-recall curve",
         "Each point is one threshold: how much of the real cases the model finds (recall, to the right) and "
         "how many of its alarms are right (precision, up). Guessing is a flat line at the share of real cases.",
         ("precision", "recall", "average-precision", "threshold")),
    Term("r2", "R² (coefficient of determination)",
         "The share of the target's variation the model explains: 1 is perfect, 0 is no better than always "
         "predicting the mean, and below 0 is worse than that. Shuffling a column the model needs lowers it.",
         ("mae", "rmse")),
    Term("recall", "Recall",
         "Of the rows that really are a class, the share the model finds. High recall means few misses.",
         ("precision", "threshold", "f1")),
    Term("residual", "Residual",
         "A row's error: the actual value minus the predicted one. Positive means the model predicted too low.",
         ("mae",)),
    Term("rmse", "Root mean squared error (RMSE)",
         "Like the mean absolute error, in the target's units, but large errors weigh more: a few big misses "
         "raise it well above the MAE. Lower is better.",
         ("mae", "residual")),
    Term("roc-auc", "ROC curve and ROC AUC",
         "The ROC curve shows how many real cases the model finds against how many other rows it wrongly flags, "
         "over every threshold. Its area (AUC) is the chance that a random real case gets a higher score than a "
         "random other row: 0.5 is guessing, 1 is perfect. It can look good even when a rare class is handled "
         "badly.",
         ("precision-recall-curve", "imbalanced-classes")),
    Term("saliency", "Saliency map",
         "For an image, the pixels that pushed the network hardest towards its answer (here by Grad-CAM). When "
         "they lie off the object, the network has learnt a shortcut, such as the background.",
         ()),
    Term("partial-dependence", "Partial dependence (and ICE lines)",
         "How the prediction changes as one column's value changes while the others stay as they are: every "
         "sampled row is given each value in turn and the predictions are averaged. The thin ICE lines are single "
         "rows; when they fan out, the column's effect depends on the other columns.",
         ("permutation-importance", "row-explanation")),
    Term("row-explanation", "Explaining one prediction",
         "How much each column moves one row's prediction: the column is given the values of typical rows in turn "
         "and the average change is its bar. Long bars are the columns this prediction rests on.",
         ("partial-dependence", "permutation-importance")),
    Term("threshold", "Decision threshold",
         "For a yes/no question the model gives a probability; the threshold is where “yes” starts. Lower it to "
         "find more real cases (recall up) at the price of more false alarms (precision down).",
         ("precision", "recall")),
    Term("validation-rows", "Training and validation rows",
         "Before training, some rows are set aside: the model learns from the training rows and never sees the "
         "validation rows, so its scores on them say how it will do on new data. Scores on the training rows "
         "flatter it.",
         ("overfitting", "cross-validation")),
)

TERMS: dict[str, Term] = {t.key: t for t in _TERMS}


def terms() -> tuple[Term, ...]:
    """Every term, in alphabetical order of its name."""
    return tuple(sorted(_TERMS, key=lambda t: t.name.lower()))


def link(key: str, words: str | None = None) -> str:
    """A markdown link to the term on the Glossary page; ``words`` shown (the term's name by default).
    An unknown key raises ``KeyError``, so a reading can never point at a missing term."""
    term = TERMS[key]
    return f"[{words or term.name}]({PAGE_URL}#{term.key})"
