"""``python -m chat_testing.fuzz``: see ``chat_testing.fuzz``."""

import sys

from chat_testing.fuzz.runner import main

sys.exit(main())
