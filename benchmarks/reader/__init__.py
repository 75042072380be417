"""Reader studies: people read images beside the detector suite, and are scored on the same images.

A study is one SQLite file (:mod:`.store`) holding everything the web app serves and nothing else: the display
pixels of each image (identifiers gone, names replaced by random ids), its ground truth and the detector suite's
verdict, the readers (one access token each, stored hashed) and their answers. No request reaches the file system:
images are rows, looked up by id.

- :mod:`.display`  a loaded image -> display pixels (16-bit grey with its default window, or 8-bit RGB)
- :mod:`.build`    folders of real / synthetic / tampered files -> a study; the bundled demo study
- :mod:`.app`      the Flask app: reading page, teaching feedback, results page, the JSON API behind them
- :mod:`.stats`    accuracy, sensitivity, specificity, AUC from confidence, Fleiss' kappa, readers vs detector
- :mod:`.report`   the results page and its inline SVG ROC, CSV/JSON export
- :mod:`.browser`  a small headless-Chromium driver (DevTools protocol over a pipe) for tests and the benchmark
- :mod:`.bench`    ``medaudit bench reader``: per-image answer latency
"""
