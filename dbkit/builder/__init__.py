"""The connector builder loop on the command line: ``dbkit init`` writes a new connector package
(:mod:`dbkit.builder.init`, from the templates in ``templates/``), ``dbkit preview`` test-reads
any source (:mod:`dbkit.builder.preview`, shown by :mod:`dbkit.builder.show`)."""
