package jsonscan_test

import (
	"fmt"

	"github.com/stratusworks/worker/internal/jsonscan"
)

// The top-level members of an object, as persist's field diff reads them:
// each key as a token, each value skipped whole.
func Example() {
	obj := `{"id":"i-1","tags":{"env":"prod"},"ips":["10.0.0.1"],"name":"caf\u00e9"}`
	s := jsonscan.NewString(obj)
	s.Accept('{')
	for {
		k, _ := s.String()
		s.Accept(':')
		v, ok := s.SkipValue(jsonscan.MaxDepth)
		if !ok {
			fmt.Println("not a value")
			return
		}
		fmt.Printf("%s = %s (escapes: %t)\n", obj[k.Start+1:k.End-1], obj[v.Start:v.End], v.Flags&jsonscan.HasEscape != 0)
		if !s.Accept(',') {
			break
		}
	}
	fmt.Println(s.Accept('}') && s.Done())
	// Output:
	// id = "i-1" (escapes: false)
	// tags = {"env":"prod"} (escapes: false)
	// ips = ["10.0.0.1"] (escapes: false)
	// name = "caf\u00e9" (escapes: true)
	// true
}
