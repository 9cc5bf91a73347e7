"""`rnnzoo serve checkpoint=PATH`: one checkpoint behind an HTTP JSON API and a page (rnnzoo.serve.app)."""
