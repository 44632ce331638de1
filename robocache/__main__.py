from robocache.cli import main

raise SystemExit(main())
