"""Contract suites: one set of tests that every implementation of an interface must pass.

The pattern (fsspec's ``tests/abstract``, pytest-testinfra's parametrized backends):

- A module here (``channel.py``, ``exporter.py``, ``share.py``) holds an abstract class
  ``XContract`` whose name does not start with ``Test``, so pytest does not collect it alone.
  Its tests take fixtures by fixed names (``channel``, ``exporter``, ``testbed``...) and say
  nothing about which implementation they run on.
- Each implementation opts in with one short subclass in a ``test_*.py`` file here, e.g.::

      class TestLocalChannel(GuestChannelContract):
          @pytest.fixture
          def channel(self):
              return LocalChannel()

  The subclass provides the fixtures the contract names (and, where the contract allows an
  honest difference, a class attribute saying so, e.g. that ssh cannot pass exit code 255).
  A later backend, channel or exporter opts in the same way and runs every test.
- An implementation that can only meet part of a contract here opts into that part only
  (``ExporterFileContract`` without ``ExporterServerContract`` for a server that cannot run on
  this machine): never a fake that claims the rest.
- A ``test_*.py`` file that needs the real test bed (the QEMU guest, the loopback servers) says
  ``pytestmark = pytest.mark.integration``. The test bed's fixtures (guest, servers, vmshare,
  ssh_guest) come from ``tests/testbed/fixtures.py``, a plugin registered in tests/conftest.py,
  so these files and tests/integration share one guest and one pair of servers per session.
"""
