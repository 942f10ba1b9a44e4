internal import CHiredis
// Placeholder: the hiredis client lands with issue 3.
func _hiredisLinked() -> Int32 { REDIS_OK }
