-- merge the shared sources into this client's own target, replacing it
SELECT soup.merge('cc-merge-' || :client_id, 'avg', ARRAY['src-1', 'src-2', 'src-3'],
				  params => '{"replace": true}');
