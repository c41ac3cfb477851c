"""ECG-only vs CroMoTEX vs image-only, validation AUROC with CIs per pathology (see xmodal.report.baselines).

    python searches/compare_baselines.py                       # synthetic cohort, 3000 subjects
    python searches/compare_baselines.py --data cohort/manifest.parquet --config my.yaml
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from xmodal.report.baselines import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
