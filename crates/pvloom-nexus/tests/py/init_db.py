"""Sets up an empty Redis for blissdata (RediSearch index, seal function, protocol version)."""
import sys
from blissdata.redis_engine.store import DataStore

DataStore(sys.argv[1], init_db=True)
