// Built once at image build time to warm Go's build cache for the packages
// that sandboxed programs import most.
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

func main() {
	var mu sync.Mutex
	mu.Lock()
	defer mu.Unlock()
	data, _ := json.Marshal(map[string]float64{"pi": math.Pi, "r": rand.Float64()})
	values := []string{strconv.Itoa(len(data)), strings.ToUpper("go"), time.Now().Format(time.RFC3339)}
	sort.Strings(values)
	writer := bufio.NewWriter(os.Stdout)
	fmt.Fprintln(writer, bytes.NewBufferString("warm").String(), errors.New("ok"), values[0] != "")
	writer.Flush()
}
