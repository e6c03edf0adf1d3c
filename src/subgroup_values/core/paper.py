"""Numbers the paper reports (Tan et al., ACL 2026), labelled as reported: the targets we compare with."""

from __future__ import annotations

import pandas as pd

#: OOD split: accuracy and NMAE, base and SFT; open-ended win rate base and SFT (None where not reported).
OOD_RESULTS = pd.DataFrame(
    [("Llama-3.1-8B", "open", .514, .685, .258, .143, .294, .320),
     ("Llama-3.2-3B", "open", .442, .508, .308, .238, .230, .234),
     ("SEA-LION-v3-8B", "open", .530, .642, .222, .158, .428, .430),
     ("Qwen2.5-7B", "open", .442, .661, .243, .157, .223, .246),
     ("Sailor2-8B", "open", .356, .720, .332, .125, .217, .255),
     ("SeaLLMs-v3-7B", "open", .440, .696, .256, .135, .082, .081),
     ("Phi-4-mini", "open", .427, .456, .267, .256, .175, .161),
     ("open-model mean", "open", .450, .624, .269, .173, .236, .247),
     ("GPT-4.1", "closed", .574, None, .182, None, .500, None),
     ("GPT-4o", "closed", .565, None, .189, None, .370, None),
     ("GPT-4o-mini", "closed", .490, None, .217, None, .310, None)],
    columns=["model", "kind", "acc_base", "acc_sft", "nmae_base", "nmae_sft", "wr_base", "wr_sft"])

#: Fairness over subgroups (OOD), mean over models, base -> SFT.
FAIRNESS = {"acc_norm_range": (.240, .179), "acc_cv": (.078, .054), "nmae_norm_range": (.280, .336),
            "nmae_cv": (.094, .116)}
LANDSCAPE = {"Religious Values": 0.318, "Social Capital & Trust": 0.084}
DATASET = {"questions": 214, "train_subgroups": 50, "ood_subgroups": 48, "train_pairs": 10700, "ood_pairs": 10177,
           "total_pairs": 20877}
REFUSALS_SENSITIVE = (0.0666, 0.0)
OPEN_ENDED_GAIN = {"Overall": 0.011, "Value": 0.022}

#: The paper's bias statement (section 5): "models (base and SFT) emulate young, male, Chinese and Christian personas
#: better than elderly, Malay, Indian and Muslim ones", as (dimension, favoured, disfavoured) in the paper's words.
#: The metric is not stated; how these words map onto our attribute values is :data:`.contrasts.CONTRASTS`.
BIAS_DIRECTIONS = (("age", "young", "elderly"), ("sex", "male", "female"), ("ethnicity", "Chinese", "Malay"),
                   ("ethnicity", "Chinese", "Indian"), ("religion", "Christian", "Muslim"))
BIAS_MODELS = "base and SFT"
