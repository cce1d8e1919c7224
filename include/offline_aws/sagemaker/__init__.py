"""Our SageMaker: ``models`` holds state and logic (testable without HTTP), ``responses`` the wire."""
