internal import CCurl
// Placeholder: the libcurl multi client lands with issue 3.
func _curlLinked() -> Int { Int(cg_multi_setopt_long(nil, CURLMOPT_MAXCONNECTS, 1).rawValue) }
