"""Per-pathology AHNP loss search — the main job.

    python searches/ahnp_per_pathology.py                 # laptop: local Ray, synthetic demo cohort
    python searches/ahnp_per_pathology.py --smoke-test    # 2 to 3 minutes on 2 cores: one pathology, 2 trials
    ray job submit --working-dir . -- python searches/ahnp_per_pathology.py --data s3://.../manifest.parquet \
        --storage s3://bucket/xmodal --gpus-per-worker 0.25

Options: ``--help``. The work is in ``xmodal.search``.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from xmodal.search.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
