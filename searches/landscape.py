"""The AHNP loss landscape per pathology: strategy × τ (× α) × seeds, resumable (see xmodal.search.landscape).

    python searches/landscape.py                              # synthetic CXR cohort, 2000 subjects, 3 seeds
    python searches/landscape.py --seeds 1 --taus 0.05        # a quick look
    python searches/landscape.py --analyse-only               # rewrite reports/landscape/ from stored results

Long: run it in the background under a memory cap; it stores each run as it lands and resumes.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from xmodal.search.landscape import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
