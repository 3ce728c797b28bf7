from unith_shell.cli import main

raise SystemExit(main())
