"""Fixed facts of the task: the DESED classes and the baseline's time grids."""

from __future__ import annotations

from greensed.config import FeatureConfig

# Order matters: it is the class axis of every label array and model output.
CLASSES: tuple[str, ...] = (
    "Alarm_bell_ringing",
    "Blender",
    "Cat",
    "Dishes",
    "Dog",
    "Electric_shaver_toothbrush",
    "Frying",
    "Running_water",
    "Speech",
    "Vacuum_cleaner",
)
CLASS_INDEX: dict[str, int] = {name: i for i, name in enumerate(CLASSES)}
N_CLASSES = len(CLASSES)

SAMPLE_RATE = 16000
CLIP_S = 10.0
# 1 + 160000 // 256 centred STFT frames per 10 s clip.
N_FEATURE_FRAMES = 626
N_MELS = 128
# The baseline CRNN pools time by 4: 626 // 4 = 156 output frames. Another model
# ([model] factory) has its own pooling: use the functions below, not these numbers.
TIME_POOLING = 4
N_OUT_FRAMES = 156
# 16000 / 256 / 4 output frames per second; 1 / 15.625 = 0.064 s per frame.
OUT_FRAME_RATE = 15.625
OUT_FRAME_S = 0.064


def out_frame_rate(features: FeatureConfig, time_pooling: int) -> float:
    """Output frames per second: sample_rate / hop / pooling (15.625 for the baseline)."""
    return features.sample_rate / features.hop_length / time_pooling


def out_frame_s(features: FeatureConfig, time_pooling: int) -> float:
    """Seconds per output frame: hop x pooling / sample_rate (0.064 for the baseline)."""
    return features.hop_length * time_pooling / features.sample_rate
